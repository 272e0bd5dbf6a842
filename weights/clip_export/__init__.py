"""Offline export and quantization tooling (needs the 'export' extra); never part of a Lambda function."""
