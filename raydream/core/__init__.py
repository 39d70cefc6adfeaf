"""Layer 0, the base: errors, file safety, typed configs, storage URIs, seeding, metrics and
background work. Imports no other raydream layer, no Ray and no torch."""
