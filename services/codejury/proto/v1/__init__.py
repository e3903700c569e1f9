"""Generated stubs; see codejury.proto."""
