"""The trainbox test suite."""
