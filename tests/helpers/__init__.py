"""Builders shared by several test modules (no tests here): test modules import from
these, never from one another."""
