"""A typed, federatable GraphQL gateway over Metronome's "List seat balances" endpoint.

Data flows one way: ``cli -> app -> schema -> loaders -> upstream``; the embedded stand-in
(``gateway.standin``) is plugged in by ``app`` as a transport and shares nothing with the client.
"""
