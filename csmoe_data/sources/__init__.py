"""Raster sources as users have them: tiles, GDAL paths, bands, NetCDF/Zarr, 0..360 maps.

Modules:
    paths: expanding ``--landcover`` / ``--climate`` values into raster paths (GDAL paths and URLs
        untouched), provenance of every source file.
    bands: choosing one band of a multi-band raster by index or description.
    xarray_raster: NetCDF and Zarr maps through xarray (grid, CRS, windowed reads).
    longitudes: footprints brought into a geographic raster's longitude range (0..360 maps).
    tiles: a spatial index over the tiles of a raster set.
"""
