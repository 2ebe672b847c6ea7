-- The Output artifact historical_stock_data.csv: no header, the nine columns in table order.
COPY (SELECT stock_date, open_value, high_value, low_value, close_value, volume_traded,
             daily_percent_change, value_change, company_name
      FROM historical_stocks_data
      ORDER BY company_name, stock_date)
TO STDOUT WITH (FORMAT csv)
