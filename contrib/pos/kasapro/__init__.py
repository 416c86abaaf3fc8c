"""КасаПро: an example POS, and its side of the expirenza-agent journal and mirror."""
