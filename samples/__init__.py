"""Sample photos and the default model, installed with cnnsheet (see README.md here)."""
