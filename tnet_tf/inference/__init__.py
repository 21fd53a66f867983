"""Using a trained run: SavedModel export, predict, adaptive attention and
its halting fit, attention records, TFLite."""
