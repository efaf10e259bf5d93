"""Command-line interface (argparse). All printing happens here."""
