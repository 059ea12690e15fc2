"""The devhost as a local token issuer, as Core Tools is a local host: its well-known documents
and `python -m devhost token`. It knows no role names beyond those it is given."""
