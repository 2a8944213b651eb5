"""Character cards V1/V2/V3 in and out: PNG/APNG text chunks, bare JSON and CHARX archives."""
