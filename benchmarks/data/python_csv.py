"""The reference the CSV loader is held to: Python's csv.reader with float() on every numeric column
of the schema, values kept in an array('f'). Prints one JSON line: seconds, maxRssBytes, rows."""
import array, csv, json, resource, sys, time

path, schema_path = sys.argv[1], sys.argv[2]
with open(schema_path) as f:
    schema = json.load(f)
numeric = [c['name'] for c in schema['columns'] if c.get('type') == 'numeric']
started = time.perf_counter()
rows = 0
values = array.array('f')
with open(path, newline='', encoding='utf-8') as f:
    reader = csv.reader(f, delimiter=schema.get('delimiter', ','))
    header = next(reader)
    idx = [header.index(c) for c in numeric]
    for row in reader:
        for i in idx:
            values.append(float(row[i]))
        rows += 1
seconds = time.perf_counter() - started
print(json.dumps({'seconds': seconds, 'maxRssBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'rows': rows}))
