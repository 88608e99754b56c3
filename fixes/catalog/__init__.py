"""Fixes netcheck can apply, one module each; importing this package registers them."""
