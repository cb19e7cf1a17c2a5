"""ATM protocols over the NDD_ATM interface (ndd/atm.py), sans-IO; the adapter hardware
(cells, AAL5, OAM) is drivers/atm/."""
