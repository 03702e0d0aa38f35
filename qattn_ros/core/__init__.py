"""What every layer shares: errors, crash-safe files, units, typed preprocessing, devices, seeds by purpose."""
