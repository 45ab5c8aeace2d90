"""Pure plotting functions over run data, and one module (`plots.save`) that writes files."""
