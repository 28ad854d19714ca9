"""LLM access for the suite: an OpenAI-compatible client with a reply cache, and prompt templates."""
