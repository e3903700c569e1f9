"""Domain types, settings, errors and logging shared by every CodeJury package."""
