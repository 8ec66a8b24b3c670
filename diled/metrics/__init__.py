"""Evaluation metrics under named, hashed protocols."""
