-- Every request wrk sends has a target of its own, so a front that remembers heads it has seen
-- (our fast path does) gains nothing from wrk repeating one request.
local sent = 0
request = function()
  sent = sent + 1
  return wrk.format(nil, "/?n=" .. sent)
end
