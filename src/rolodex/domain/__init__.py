"""Pure domain: models, wire shapes, normalisation, provider profiles, vCard. No I/O."""
