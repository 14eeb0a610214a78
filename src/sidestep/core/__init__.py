"""The canonical model: the one internal form of chat requests, answers, stream events and usage.

Every wire format reads into it and writes out of it; it imports nothing of the gateway (the lowest layer).
"""
