"""Tests for insightray.nlp."""
