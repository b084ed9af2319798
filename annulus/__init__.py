"""annulus: the exact counter-example of Fetaya et al. (ICLR 2020), Appendix D."""
