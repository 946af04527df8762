"""Outbound webhook delivery without Django: Standard Webhooks signing and an SSRF-safe HTTP POST."""
