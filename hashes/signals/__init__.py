"""Pure signal code (no Django): parsing, distances, media hashing and the match index."""
