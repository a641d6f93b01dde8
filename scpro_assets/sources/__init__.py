"""Sources: adapters that map datasets onto the event contracts, and the synthetic generator."""
