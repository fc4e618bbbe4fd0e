"""The primitives above `cryptography`: the Noise framework, P-256 points, SPAKE2+."""
