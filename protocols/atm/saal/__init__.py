"""The signalling AAL (Q.2100) on VC 0/5, sans-IO:

  sscop_pdu  SSCOP PDUs (Q.2110 §7): trailer-coded reprs, parse/emit
  sscop      the SSCOP connection state machine (Q.2110)
  sscf       SSCF-UNI (Q.2130): the AAL primitives the signalling user sees
  endpoint   SaalEndpoint: SSCF + SSCOP glued to VC 0/5 of an ATM NDD
"""
