"""Explanation texts of the workbook, one TOML file per language, installed with cnnsheet."""
