"""HTTP triggers: route templates, request and response conversion, auth levels, streams."""
