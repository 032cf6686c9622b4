"""Media for calls: G.711, RTP and RTCP, the jitter buffer, DTMF, and the audio ports
(PyAudio, null, WAV) that calls play and capture through."""
