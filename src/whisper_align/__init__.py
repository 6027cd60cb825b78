"""whisper-align: exact word-level timestamps from Whisper models through their cross-attention alignment heads."""

__version__ = "0.1.0"
