"""How a run is carried out: the commit protocol (``ledger``) and, in time, the plan, pipeline and events.

``dataloader.run.ledger`` holds what every destination and state backend shares: the commit record
a destination stores inside its own transaction, the SQL helper that stores it, and the lease that
keeps two runs of one recipe apart.
"""
