"""Selecting real training images with the teacher (DELT's ranking, RDED's crop scoring)."""
