"""paper_figures: regenerate the paper's figures and tables from stored results."""
