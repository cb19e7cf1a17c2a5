"""Scripted-peer TCP tests (issue 14): packetdrill's idea, our own code -- see README.md."""
