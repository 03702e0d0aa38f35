"""Explanations: saliency maps, overlays, deletion / insertion metrics and reports."""
