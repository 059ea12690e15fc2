"""The devhost's local token issuer: its signing key, its JWKS and the tokens it mints.

Neutral: the devhost serves the issuer's documents and mints from the command line; the
platform reads the JWKS file (`jwks_path(data_dir)`) to validate those tokens in local mode.
"""
