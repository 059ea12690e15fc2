"""Personal data: finding it in text and values, and keeping it out of storage and logs."""
