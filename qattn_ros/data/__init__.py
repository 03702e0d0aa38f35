"""Data: readers for every source, the synthetic road generator, the preprocessed cache."""
