"""Shared UI pieces: the page frame first, then the smaller components pages compose."""
