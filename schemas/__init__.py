"""JSON Schemas for arb's config files, shipped inside the package."""
