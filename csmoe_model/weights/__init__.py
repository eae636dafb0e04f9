"""Weights in and out: a safe reader for torch checkpoints, CSMAE import, self-describing safetensors."""
