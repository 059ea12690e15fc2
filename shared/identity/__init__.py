"""Who the caller is (Entra ID tokens, App Service Authentication, the devhost's local issuer)
and what it may do (app roles, one permission per route)."""
