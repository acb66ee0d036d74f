"""The rig's choices the command line offers, kept apart from the rig so building a parser stays cheap.

``faxengine`` builds every subcommand's parser on each run; this module imports nothing, so listing
``faxengine rig``'s modes does not load numpy, PIL or spandsp.
"""

MODES = ("pair", "answer", "call")
DIAL_RESULTS = ("answer", "busy", "no-answer", "no-dialtone", "no-carrier")
