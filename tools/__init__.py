"""Command-line tools: `tunstack up`, `tunstack demo`, `tunstack ping`."""
