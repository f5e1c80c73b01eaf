"""Identify: which person (lead) an inquiry or activity belongs to, by exact keys."""
