"""The peer benchmark: prompthone's methods and DSPy, TextGrad, promptolution on one server under one budget."""
