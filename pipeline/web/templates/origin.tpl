<dl>
% for label, key in (("from", "sender"), ("subject", "subject"), ("source", "source"), ("arrived as", "name"), ("sent", "received"), ("filed", "when"), ("length", "length")):
% if entry.get(key):
<dt>{{label}}</dt><dd>{{entry[key]}}</dd>
% end
% end
</dl>
