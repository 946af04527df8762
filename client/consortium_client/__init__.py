"""Member-side helpers for consortium (no Django): statement signing, JWK handling, webhook verification."""
