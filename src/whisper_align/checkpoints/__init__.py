"""Checkpoint formats: openai .pt, CTranslate2 model.bin, Hugging Face safetensors."""
