"""The AI capability: the LLM port, its settings and its adapters on the openai SDK."""
