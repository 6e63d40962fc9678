package httpsrc

// Reset drops the connections kept for reuse, so the next range dials
// anew. The block daemon's cache calls it (blockd.Resetter) before it
// fetches again a chunk that failed verification: the bytes may have been
// damaged on one connection or by the proxy or server behind it.
func (d Device) Reset() { d.Source.client.HTTPClient.CloseIdleConnections() }
