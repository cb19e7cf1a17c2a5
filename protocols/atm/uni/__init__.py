"""Q.2931 / ATM Forum UNI 3.1 signalling, sans-IO:

  q2931     messages: header, IE list
  causes    cause values, their texts, cause -> errno
  ie        information elements: one small repr per IE
  call      call-control vocabulary: sides, timers, the Call record, events
  control   Uni: call control for one signalling channel (user or network side)
  endpoint  UniEndpoint: a Uni over a SAAL endpoint
"""
