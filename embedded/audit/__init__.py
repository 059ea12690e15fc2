"""The audit chain's format, its checkpoints file and its verifier: what the platform writes and
`python -m devhost audit verify` checks, without either importing the other."""
